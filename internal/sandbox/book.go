package sandbox

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Book is one account's sandbox state: balances and orders. It is small and
// kept whole, so a store can hold it as one document per account.
type Book struct {
	// Balances maps asset codes to decimal amounts.
	Balances map[string]string `json:"balances"`
	// Orders, oldest first; at most MaxOpen open and MaxClosed closed.
	Orders []Order `json:"orders"`
}

// Limits on a book's size.
const (
	MaxOpen   = 500
	MaxClosed = 1000
)

// Order is an order as the sandbox records it.
type Order struct {
	TxID      string    `json:"txid"`
	UserRef   int64     `json:"userref,omitempty"`
	ClOrdID   string    `json:"cl_ord_id,omitempty"`
	Status    string    `json:"status"` // open, canceled
	Reason    string    `json:"reason,omitempty"`
	OpenedAt  time.Time `json:"opened_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Pair      string    `json:"pair"` // altname
	Type      string    `json:"type"` // buy, sell
	OrderType string    `json:"ordertype"`
	Price     string    `json:"price,omitempty"`
	Price2    string    `json:"price2,omitempty"`
	Volume    string    `json:"volume"`
	OFlags    string    `json:"oflags,omitempty"`
	Descr     string    `json:"descr"`
	// HoldAsset/HoldAmount: funds reserved while the order is open.
	HoldAsset  string `json:"hold_asset"`
	HoldAmount string `json:"hold_amount"`
}

func (b *Book) clone() *Book {
	return &Book{Balances: maps.Clone(b.Balances), Orders: slices.Clone(b.Orders)}
}

// Store keeps books. The in-memory Memory serves tests and the embedded
// default; a store-backed one keeps them in the database.
type Store interface {
	// View calls fn with the account's book (an empty one if it has none);
	// fn must not keep or change it.
	View(ctx context.Context, accountID string, fn func(b *Book) error) error
	// Update calls fn with a copy of the account's book and saves the copy
	// if fn returns nil, atomically with respect to other updates of the
	// same account. fn's error is returned unchanged.
	Update(ctx context.Context, accountID string, fn func(b *Book) error) error
}

// Memory is a Store in this process's memory.
type Memory struct {
	mu    sync.Mutex
	books map[string]*Book
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{books: map[string]*Book{}} }

func (m *Memory) get(accountID string) *Book {
	b := m.books[accountID]
	if b == nil {
		b = &Book{Balances: map[string]string{}}
	}
	return b
}

// View implements Store.
func (m *Memory) View(_ context.Context, accountID string, fn func(b *Book) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(m.get(accountID))
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, accountID string, fn func(b *Book) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.get(accountID).clone()
	if err := fn(b); err != nil {
		return err
	}
	m.books[accountID] = b
	return nil
}

// Seed sets an account's balances (development mode seeds new accounts with
// DefaultSeed).
func Seed(ctx context.Context, s Store, accountID string, balances map[string]string) error {
	return s.Update(ctx, accountID, func(b *Book) error {
		maps.Copy(b.Balances, balances)
		return nil
	})
}
