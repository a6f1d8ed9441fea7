module github.com/berthdev/berth/cmd/benchtable

go 1.26.0
