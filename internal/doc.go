// Package internal holds changegate's client-free domain logic, one package
// per domain (approval, window, checks, snapshot, workload, notify), each
// with table tests and no dependency on a Kubernetes client.
package internal
