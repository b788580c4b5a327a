module github.com/deployment-engine/engine/monitor

go 1.26.8
