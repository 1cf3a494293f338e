package transforms_test

// The test configurations route to kafka sinks, whose kind the loader learns from the
// sink registry.
import _ "github.com/switchyard-dev/switchyard/sinks/all"
