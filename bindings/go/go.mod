module fmr.local/fmr

go 1.19
