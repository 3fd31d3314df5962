// pause: the process that holds a Pod's namespaces open (the "infra" container of every Pod sandbox),
// as Kubernetes' own pause image does: wait for a signal, reap orphaned children, exit 0 on SIGINT or
// SIGTERM. Built here because no registry can be reached to pull registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
