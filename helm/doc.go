// Package helm holds the tests of the Helm chart in helm/adhocd, in a Go
// module of its own (github.com/adhocd/adhocd/helm, joined to the server's
// by the repository's go.work) so that the server's module does not depend
// on the Kubernetes API types. The chart is linted and rendered with the
// helm binary CI builds from the Go module proxy ($HELM, else helm on PATH),
// with its defaults, with each values file of helm/adhocd/ci and as the
// subchart of another chart; every rendered manifest is decoded strictly
// into the Kubernetes API types, and the rendered config.yaml is loaded with
// adhocd's own configuration loader. The command line of the chart's
// `helm test` Pod is run against a real adhocd on loopback, and the values
// table of helm/adhocd/README.md is generated from the comments of
// values.yaml (TestChartREADME; UPDATE_CHART_README=1 rewrites it). The
// package has no code of its own; docs/kubernetes.md describes the chart.
package helm
