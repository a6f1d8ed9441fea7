module github.com/berthdev/berth/cmd/berthctl

go 1.26.0
