module github.com/deployment-engine/engine/monitor

go 1.26.8

require github.com/deployment-engine/engine/services v0.0.0

replace github.com/deployment-engine/engine/services => ../services
