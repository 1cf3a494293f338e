//go:build !unix

package app

// takeTerminal is a no-op where there are no Unix process groups.
func takeTerminal() (restore func()) { return func() {} }
