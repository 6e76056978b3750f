// SPDX-License-Identifier: MIT
//
// A Go caller of ptmon, written as issue 12's users write theirs:
// exec.CommandContext with a 1 s timeout, the output collected in buffers
// (so that Wait waits for EOF on ptmon's stdout and stderr).  On timeout Go
// SIGKILLs ptmon; Wait must return promptly, and nothing may be left
// (tests/test_guardian.c checks that from a cgroup).
//
// Usage: ptmon-goctx PTMON RUN-ARG...   (runs "PTMON run --no-control RUN-ARG...")
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: ptmon-goctx PTMON RUN-ARG...")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	args := append([]string{"run", "--no-control"}, os.Args[2:]...)
	cmd := exec.CommandContext(ctx, os.Args[1], args...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	fmt.Printf("Wait returned %.1f ms after the 1 s timeout (%v; %d bytes of output)\n",
		(took.Seconds()-1)*1000, err, out.Len())
	if ctx.Err() == nil {
		fmt.Println("the task ended before the timeout: nothing tested")
		os.Exit(3)
	}
}
