module github.com/deployment-engine/engine/logsvc

go 1.26.8
