// Package helm holds the tests of the Helm chart in helm/adhocd (helm_test.go,
// package helm_test): the chart is linted and rendered with the helm binary
// CI builds from the Go module proxy, every rendered manifest is decoded
// strictly into the Kubernetes API types, and the rendered config.yaml is
// loaded with adhocd's own configuration loader. The package has no code of
// its own; docs/kubernetes.md describes the chart.
package helm
