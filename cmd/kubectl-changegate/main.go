// kubectl-changegate is the kubectl plugin for changegate: install it on
// PATH and run kubectl changegate list, status, approve, go, no-go, abort
// and history.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/changegate/changegate/internal/plugin"
)

func main() {
	if err := plugin.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
