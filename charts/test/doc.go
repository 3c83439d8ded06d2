// Package test holds the tests of the Helm chart in ../maxine and of the
// GitHub workflows: the chart rendered with Helm's own engine for several
// value sets, every object decoded strictly into the Kubernetes API types,
// Helm's lint, the schema's refusals, the invariants shared with the
// binary, and the real maxine binary started with the environment a
// rendered Deployment gives it; the workflows checked by actionlint.
//
// It is a module of its own (Helm's library brings ~230 modules), kept
// out of the main go.mod; `make chart` runs it.
package test
