package capability

import "testing"

func TestCheck(t *testing.T) {
	for c, ok := range map[string]bool{
		"NET_BIND_SERVICE": true, "cap_chown": true, " CAP_SETUID ": true,
		"SYS_ADMIN": false, "ALL": false, "DAC_READ_SEARCH": false, "SYS_PTRACE": false, "SYS_MODULE": false,
		"NET_ADMIN": false, "SYS_RAWIO": false, "BPF": false, "PERFMON": false, "NOT_A_CAP": false, "": false,
	} {
		if err := Check(c); (err == nil) != ok {
			t.Errorf("%q: err=%v, want allowed=%v", c, err, ok)
		}
	}
}
