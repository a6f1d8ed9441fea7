module github.com/berthdev/berth/cmd/workspace-demo

go 1.26.0
