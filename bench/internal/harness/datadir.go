package harness

import "path/filepath"

// DataDir is the moat's data directory (MOAT_DATA_DIR): its SQLite file
// is moat.db there, for benchmarks that prepare the database directly.
func (m *Moat) DataDir() string { return filepath.Join(m.dir, "data") }
