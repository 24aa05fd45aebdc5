// Package zxcvbn is moat's copy of github.com/trustelem/zxcvbn v1.0.1 (MIT,
// LICENSE.txt), a Go port of Dropbox's zxcvbn 4.4.2 password strength
// estimator with its bundled word lists.
//
// It differs from upstream only in how the bundled dictionaries are held:
// upstream builds a map per word list when the program starts (about 60 ms
// and 10 MB of heap in every process, including each CLI command, and 10 MB
// more for the garbage collector to scan in a serving moat); this copy keeps
// the lists as static data, builds a sorted index of each on the first
// password check, and looks words up by bisection (about 0.4 MB). The
// changed files are frequency/lists.go (the lists as package-level slices)
// and matching/dictionary.go and matching/omnimatch.go (the sorted index,
// built once); time_estimate.go keeps only what scoring uses (upstream's
// crack-time display was unused here). A test compares scores, guesses and match sequences with
// upstream's, which stays in go.mod for that test only.
package zxcvbn
