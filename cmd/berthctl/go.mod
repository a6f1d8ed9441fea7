module github.com/berthdev/berth/cmd/berthctl

go 1.26.0

require github.com/berthdev/berth/pkg/events v0.0.0

replace github.com/berthdev/berth/pkg/events => ../../pkg/events
