module aether-conformance/go_oracle

go 1.19
