module github.com/deployment-engine/engine/integration/testbed

go 1.26.8
