//! Command-line argument helpers shared by the programs.

/// Parses a comma-separated list of numbers ("1,8,16").
pub fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|x| x.trim().parse::<usize>().map_err(|e| format!("'{x}': {e}")))
        .collect()
}
