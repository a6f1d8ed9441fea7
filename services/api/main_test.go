package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every API started by a test is stopped by it; nothing may keep running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
