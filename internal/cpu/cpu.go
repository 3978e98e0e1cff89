// Package cpu reads the CPU time the process has used, for benchmarks that
// report CPU per operation (byoc bench, the ledger's benchmarks): a busy
// machine lengthens wall time but not the process's own CPU time.
package cpu
