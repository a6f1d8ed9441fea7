module github.com/berthdev/berth/cmd/testtimes

go 1.26.0
