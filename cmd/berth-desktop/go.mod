module github.com/berthdev/berth/cmd/berth-desktop

go 1.26.0

require github.com/coder/websocket v1.8.15
