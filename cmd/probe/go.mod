module github.com/berthdev/berth/cmd/probe

go 1.26.0
