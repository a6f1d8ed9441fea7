package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Everything a test starts is stopped by it; nothing may keep running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
