module github.com/deployment-engine/engine/integration

go 1.26.8
