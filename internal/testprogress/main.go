// Command testprogress turns `go test -json` into progress a person can follow during
// `make test`: a line when each package finishes (ok or FAIL, with its time), a line per
// top-level test that took 10s or more (the integration tests, as they finish), and the full
// output of every failed test and failed build. It exits 1 if anything failed, and 2 on
// input that is not test2json, so the pipeline fails with the tests.
//
//	go test -json ./... | go run ./internal/testprogress
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// slow is how long a top-level test runs before its result gets a line of its own.
const slow = 10 * time.Second

func main() {
	os.Exit(run(os.Stdin, os.Stdout, time.Now))
}

func run(in io.Reader, out io.Writer, now func() time.Time) int {
	start := now()
	output := map[string][]string{} // package/test or package -> its output so far
	failed, packages := 0, 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || (e.Action == "" && e.ImportPath == "") {
			// Not test2json: say so, pass the line through (e.g. a go command error).
			fmt.Fprintf(out, "%s\n", line)
			failed++
			continue
		}
		key := e.Package + " " + e.Test
		if e.ImportPath != "" { // build output
			key = "build " + e.ImportPath
		}
		switch e.Action {
		case "output", "build-output":
			output[key] = append(output[key], e.Output)
		case "build-fail":
			fmt.Fprintf(out, "BUILD FAIL %s\n%s", e.ImportPath, strings.Join(output[key], ""))
			failed++
		case "pass", "skip":
			if e.Test == "" {
				packages++
				fmt.Fprintf(out, "ok    %-60s %6.1fs   (%d packages, %s)\n", e.Package, e.Elapsed, packages, since(start, now))
			} else if !strings.Contains(e.Test, "/") && time.Duration(e.Elapsed*float64(time.Second)) >= slow {
				fmt.Fprintf(out, "      %s %s %.1fs\n", e.Package, e.Test, e.Elapsed)
			}
			delete(output, key)
		case "fail":
			if e.Test == "" {
				packages++
				if e.FailedBuild == "" {
					// The package's own output (a panic, TestMain) after its failed tests.
					fmt.Fprint(out, strings.Join(output[key], ""))
				}
				fmt.Fprintf(out, "FAIL  %-60s %6.1fs   (%d packages, %s)\n", e.Package, e.Elapsed, packages, since(start, now))
				failed++
			} else if !strings.Contains(e.Test, "/") {
				fmt.Fprintf(out, "--- FAIL %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(output[key], ""))
			}
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testprogress: read: %v\n", err)
		return 2
	}
	if failed > 0 {
		fmt.Fprintf(out, "FAIL: %d failures in %d packages (%s)\n", failed, packages, since(start, now))
		return 1
	}
	fmt.Fprintf(out, "PASS: %d packages (%s)\n", packages, since(start, now))
	return 0
}

func since(start time.Time, now func() time.Time) string {
	return now().Sub(start).Round(time.Second).String()
}
