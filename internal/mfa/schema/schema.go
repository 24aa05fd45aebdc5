// Package schema holds the tables the second factors need, as the next
// migration of each store (SQLite and PostgreSQL). It is a proposal until
// integration copies the files into internal/store/*/migrations; the tests
// here prove both apply on top of the foundation schema and that the
// statements the atomic methods rely on behave as documented in
// internal/mfa/store.go.
package schema

import _ "embed"

// SQLite is the SQLite migration.
//
//go:embed sqlite.sql
var SQLite string

// PostgreSQL is the PostgreSQL migration.
//
//go:embed postgres.sql
var PostgreSQL string
