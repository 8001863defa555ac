# Shared by the device checks (sourced): the output and work folders, the clock, PASS/FAIL lines.
# Before sourcing, set OUT and WORK (or take the defaults the caller passes).
mkdir -p "$OUT" "$WORK"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
fails=0
verdict() { # ok-flag label detail
  if [ "$1" = 1 ]; then echo "PASS $2: $3"; else echo "FAIL $2: $3"; fails=$((fails + 1)); fi
}
