package events

import "time"

// Value formats of Berth's KV buckets: part of the contract like the
// events, because several services read what one writes.

// EngineReportTTL is how long a provisioner's report in
// ServiceStatusBucket stays valid; provisioners report every quarter of it.
const EngineReportTTL = 20 * time.Second

// EngineReportKeyPrefix + instance is a provisioner's key in
// ServiceStatusBucket.
const EngineReportKeyPrefix = "provisioner."

// EngineReport is a provisioner's last word in ServiceStatusBucket (JSON).
type EngineReport struct {
	EngineOK bool      `json:"engine_ok"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// ActivityFormat is the layout of ActivityBucket's values: when the
// workspace (the key) was last used, in UTC.
const ActivityFormat = time.RFC3339Nano

// InstallationKey is the key of the installation id in InstallationBucket.
const InstallationKey = "id"
