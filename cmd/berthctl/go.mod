module github.com/berthdev/berth/cmd/berthctl

go 1.26.0

require (
	github.com/berthdev/berth/pkg/events v0.0.0
	github.com/berthdev/berth/pkg/platform v0.0.0-00010101000000-000000000000
)

replace (
	github.com/berthdev/berth/pkg/events => ../../pkg/events
	github.com/berthdev/berth/pkg/platform => ../../pkg/platform
)
