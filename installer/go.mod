module github.com/deployment-engine/engine/installer

go 1.26.8
