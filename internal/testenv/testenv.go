// Package testenv gives tests the real components they need (PostgreSQL,
// Redis, Chromium, oathtool) from environment variables. Without a
// variable the test is skipped with a message that says how to enable it;
// with MOAT_TEST_REQUIRE=1 (set by .ci/run) a missing component fails the
// test instead, so CI can never pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Lookup returns the value of the environment variable name, or skips (or,
// under MOAT_TEST_REQUIRE=1, fails) the test with a message naming the
// variable and an example value.
func Lookup(t testing.TB, name, what, example string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := what + ": " + name + " is not set (e.g. " + name + "=" + example + "); see .ci/run"
	if os.Getenv("MOAT_TEST_REQUIRE") == "1" {
		t.Fatal("required component missing: " + msg)
	}
	t.Skip("skipping: " + msg)
	return ""
}

// PostgresDSN returns the DSN of a PostgreSQL server tests may create
// databases on.
func PostgresDSN(t testing.TB) string {
	return Lookup(t, "MOAT_TEST_POSTGRES_DSN", "PostgreSQL tests",
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// RedisAddr returns the address of a Redis server tests may use.
func RedisAddr(t testing.TB) string {
	return Lookup(t, "MOAT_TEST_REDIS_ADDR", "Redis tests", "127.0.0.1:6379")
}

// Chromium returns the path of a Chromium binary for browser tests.
func Chromium(t testing.TB) string {
	return Lookup(t, "MOAT_TEST_CHROMIUM", "browser tests", "/usr/bin/chromium")
}

// Oathtool returns the path of oathtool, the reference TOTP client.
func Oathtool(t testing.TB) string {
	return Lookup(t, "MOAT_TEST_OATHTOOL", "TOTP client tests", "/usr/bin/oathtool")
}

// RedisKeyPrefix returns a key prefix no other test run uses, so that
// tests sharing the machine's Redis never see each other's counters (a
// rate limit reached by an earlier run would fail a later one). Every node
// of one test must use the same prefix.
func RedisKeyPrefix(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "moat-test:" + hex.EncodeToString(b[:]) + ":"
}

// Redis connects to the Redis at MOAT_TEST_REDIS_ADDR (skipping, or
// failing under MOAT_TEST_REQUIRE=1, when it is not set), checks that it
// answers, and closes the client when the test ends. Give each test its
// keys of its own with RedisKeyPrefix.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	addr := RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return rdb
}
