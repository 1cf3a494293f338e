//go:build race

package contract

// raceBuild: see hyperOptions in decoder.go.
const raceBuild = true
