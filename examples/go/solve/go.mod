module fmr.local/examples/solve

go 1.19

require fmr.local/fmr v0.0.0

replace fmr.local/fmr => ../../../bindings/go
