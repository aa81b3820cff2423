module aether-conformance/go_seed

go 1.19
