package cluster

// CloseAbruptly stops c as a crash would: goroutines and client gone,
// lease and entries left in Redis for the others to reap.
func CloseAbruptly(c *Cluster) { c.closeAbruptly() }
