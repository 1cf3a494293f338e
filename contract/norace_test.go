//go:build !race

package contract_test

// raceBuild: race builds make hyperpb copy each payload (see decoder.go).
const raceBuild = false
