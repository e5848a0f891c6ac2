//! Harness for the black-box tests: start and stop the `shale` binary.
