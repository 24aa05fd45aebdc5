package config_test

import (
	"fmt"

	"github.com/moat-dev/moat/internal/config"
)

// Settings come from defaults, a TOML file, MOAT_* variables and flags, in
// that order; every problem is reported at once, each under its key.
func ExampleLoad() {
	env := map[string]string{
		"MOAT_ADDR":                       "127.0.0.1:9000",
		"MOAT_DATABASE_DRIVER":            "mysql",
		"MOAT_SECURITY_ARGON2_MEMORY_KIB": "4096",
	}
	_, err := config.Load([]string{"--brand", "Example Exchange"}, func(k string) string { return env[k] })
	fmt.Println(err)

	delete(env, "MOAT_DATABASE_DRIVER")
	delete(env, "MOAT_SECURITY_ARGON2_MEMORY_KIB")
	cfg, err := config.Load([]string{"--brand", "Example Exchange"}, func(k string) string { return env[k] })
	fmt.Println(cfg.Brand, cfg.PublicOrigin, cfg.Dev, err)
	// Output:
	// invalid configuration:
	//   - database.driver (MOAT_DATABASE_DRIVER): "mysql": must be "sqlite" or "postgres"
	//   - security.argon2_memory_kib (MOAT_SECURITY_ARGON2_MEMORY_KIB): 4096 KiB with argon2_time 2 is below the OWASP minimum of 19456 KiB (m=19456 t=2 p=1 is the default)
	// Example Exchange http://localhost:9000 true <nil>
}
