package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/moat-dev/moat/internal/store"
)

// BookDB is the part of store.Queries that Persistent needs (store.Store
// has it).
type BookDB interface {
	GetSandboxBook(ctx context.Context, accountID string) ([]byte, error)
	UpdateSandboxBook(ctx context.Context, accountID string, fn func(old []byte) ([]byte, error)) error
}

// Persistent is a Store that keeps each account's book in the database, as
// one JSON document per account, so balances and orders survive restarts
// and are shared by every node.
type Persistent struct {
	db   BookDB
	seed map[string]string
}

// NewPersistent returns a Persistent store over db. seed is what an account
// that has no book yet starts with, lazily on its first call (development
// mode passes DefaultSeed(); nil starts empty). The seed is only written
// when the account's first change is.
func NewPersistent(db BookDB, seed map[string]string) *Persistent {
	return &Persistent{db: db, seed: maps.Clone(seed)}
}

// View implements Store.
func (p *Persistent) View(ctx context.Context, accountID string, fn func(b *Book) error) error {
	data, err := p.db.GetSandboxBook(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		data = nil
	} else if err != nil {
		return fmt.Errorf("sandbox: read book: %w", err)
	}
	b, err := p.decode(data)
	if err != nil {
		return err
	}
	return fn(b)
}

// Update implements Store.
func (p *Persistent) Update(ctx context.Context, accountID string, fn func(b *Book) error) error {
	var fnErr error
	err := p.db.UpdateSandboxBook(ctx, accountID, func(old []byte) ([]byte, error) {
		b, err := p.decode(old)
		if err != nil {
			return nil, err
		}
		if fnErr = fn(b); fnErr != nil {
			return nil, fnErr
		}
		out, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("sandbox: encode book: %w", err)
		}
		return out, nil
	})
	if fnErr != nil && err == fnErr {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("sandbox: update book: %w", err)
	}
	return nil
}

// decode reads a stored book; nil data is a new account's book.
func (p *Persistent) decode(data []byte) (*Book, error) {
	b := &Book{}
	if data == nil {
		b.Balances = maps.Clone(p.seed)
	} else if len(data) > 0 {
		if err := json.Unmarshal(data, b); err != nil {
			return nil, fmt.Errorf("sandbox: decode book: %w", err)
		}
	}
	if b.Balances == nil {
		b.Balances = map[string]string{}
	}
	return b, nil
}
