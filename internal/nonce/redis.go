package nonce

import (
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// width is the fixed width of nonce strings in Redis. Redis's Lua numbers
// are doubles, exact only to 2^53, while nonces are 64-bit (python-kraken-sdk
// sends time×10^8 ≈ 2^57). So every number is written as a zero-padded
// decimal of 21 digits (room for nonce+window, up to 2^65): comparing two
// such strings byte by byte compares the numbers exactly, and sorted-set
// members with equal scores sort the same way. All arithmetic happens in Go.
const width = 21

func pad(n uint64) string { return fmt.Sprintf("%0*d", width, n) }

// padSum writes a+b without overflow.
func padSum(a, b uint64) string {
	sum, carry := bits.Add64(a, b, 0)
	if carry == 0 {
		return pad(sum)
	}
	v := new(big.Int).SetUint64(sum)
	v.Add(v, new(big.Int).Lsh(big.NewInt(1), 64))
	d := v.String()
	return strings.Repeat("0", width-len(d)) + d
}

// nonceScript is Memory's nonceState.accept, over a hash (h: high-water
// mark, f: floor) and a sorted set of nonces seen below the mark.
var nonceScript = redis.NewScript(`
local function lt(a, b)
  for i = 1, 21 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local zero = string.rep('0', 21)
local n = ARGV[1]
local st = redis.call('HMGET', KEYS[1], 'h', 'f')
local high = st[1] or zero
local floor = st[2] or zero
if ARGV[2] == '0' then
  if not lt(high, n) then
    if high == n then return 'replayed' end
    return 'stale'
  end
  redis.call('HSET', KEYS[1], 'h', n, 'f', n)
  redis.call('DEL', KEYS[2])
  return 'ok'
end
if not lt(floor, n) then return 'stale' end
if lt(high, n) then
  redis.call('HSET', KEYS[1], 'h', n)
  redis.call('ZADD', KEYS[2], 0, n)
  redis.call('ZREMRANGEBYLEX', KEYS[2], '-', '[' .. ARGV[4])
else
  if high == n then return 'replayed' end
  if not lt(high, ARGV[3]) then return 'stale' end
  if redis.call('ZADD', KEYS[2], 0, n) == 0 then return 'replayed' end
end
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[5]) then
  local m = redis.call('ZPOPMIN', KEYS[2])
  redis.call('HSET', KEYS[1], 'f', m[1])
end
return 'ok'
`)

// RedisClient is what the Redis implementations use of a go-redis client;
// *redis.Client, *redis.ClusterClient and *redis.Ring provide it.
type RedisClient interface {
	redis.Scripter
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// Redis is a Tracker shared by every node using the same Redis and prefix.
// Nonce state has no expiry: forgetting a key's high-water mark would
// re-open every request it ever signed to replay. Call Forget when a key is
// deleted.
type Redis struct {
	rdb     RedisClient
	prefix  string
	maxSeen int
}

// NewRedis returns a Tracker over rdb (a *redis.Client, *redis.ClusterClient
// or *redis.Ring). prefix namespaces the keys ("moat:"); it must not contain
// braces, which the key names use as a cluster hash tag. maxSeen 0 means
// DefaultMaxSeen.
func NewRedis(rdb RedisClient, prefix string, maxSeen int) *Redis {
	if maxSeen <= 0 {
		maxSeen = DefaultMaxSeen
	}
	return &Redis{rdb: rdb, prefix: prefix, maxSeen: maxSeen}
}

func (r *Redis) keys(keyID string) []string {
	tag := "{" + keyID + "}"
	return []string{r.prefix + "nonce:" + tag, r.prefix + "nonce-seen:" + tag}
}

// CheckAndSet implements Tracker.
func (r *Redis) CheckAndSet(ctx context.Context, keyID string, n, window uint64) error {
	windowed, low := "0", uint64(0)
	if window > 0 {
		windowed = "1"
		if n > window {
			low = n - window
		}
	}
	res, err := nonceScript.Run(ctx, r.rdb, r.keys(keyID),
		pad(n), windowed, padSum(n, window), pad(low), r.maxSeen).Text()
	if err != nil {
		return fmt.Errorf("nonce: redis: %w", err)
	}
	switch res {
	case "ok":
		return nil
	case "replayed":
		return ErrReplayed
	case "stale":
		return ErrStale
	}
	return fmt.Errorf("nonce: redis: unexpected reply %q", res)
}

// Forget drops a key's nonce state.
func (r *Redis) Forget(ctx context.Context, keyID string) error {
	return r.rdb.Del(ctx, r.keys(keyID)...).Err()
}

// counterScript is MemoryCounter.Add over a hash (l: level, t: last change
// in Unix ms, u: locked until in Unix ms). The hash expires once the level
// has decayed to zero and any lock has ended, so idle counters cost nothing.
var counterScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local lock = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'l', 't', 'u')
if cost == 0 and not v[2] then
  -- A read of a counter that does not exist: write nothing.
  if max >= 0 then return {1, '0', '0'} end
  return {0, '0', '0'}
end
local level = tonumber(v[1]) or 0
local last = tonumber(v[2]) or now
local locked = tonumber(v[3]) or 0
if now > last then
  if rate > 0 then
    level = level - (now - last) / 1000 * rate
    if level < 0 then level = 0 end
  end
  last = now
end
local allowed = 0
if now < locked then
elseif level + cost > max then
  if lock > 0 then locked = now + lock end
else
  level = level + cost
  allowed = 1
end
local ls = string.format('%.17g', level)
redis.call('HSET', KEYS[1], 'l', ls, 't', string.format('%.0f', last), 'u', string.format('%.0f', locked))
if rate > 0 then
  local ttl = math.ceil(level / rate * 1000)
  if locked - now > ttl then ttl = locked - now end
  redis.call('PEXPIRE', KEYS[1], ttl + 1000)
end
return {allowed, ls, string.format('%.0f', locked)}
`)

// RedisCounter is a Counter shared by every node using the same Redis and
// prefix.
type RedisCounter struct {
	rdb    RedisClient
	prefix string
}

// NewRedisCounter returns a Counter over rdb; prefix as for NewRedis.
func NewRedisCounter(rdb RedisClient, prefix string) *RedisCounter {
	return &RedisCounter{rdb: rdb, prefix: prefix}
}

// Add implements Counter. Time is kept to the millisecond.
func (c *RedisCounter) Add(ctx context.Context, key string, cost float64, l Limit, now time.Time) (Decision, error) {
	res, err := counterScript.Run(ctx, c.rdb, []string{c.prefix + "rate:{" + key + "}"},
		now.UnixMilli(), cost, l.Max, l.DecayPerSecond, l.LockFor.Milliseconds()).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("nonce: redis: %w", err)
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("nonce: redis: unexpected reply %v", res)
	}
	allowed, _ := res[0].(int64)
	ls, _ := res[1].(string)
	us, _ := res[2].(string)
	level, err1 := strconv.ParseFloat(ls, 64)
	until, err2 := strconv.ParseInt(us, 10, 64)
	if err1 != nil || err2 != nil {
		return Decision{}, fmt.Errorf("nonce: redis: unexpected reply %v", res)
	}
	d := Decision{Allowed: allowed == 1, Level: level}
	if until > now.UnixMilli() {
		d.LockedUntil = time.UnixMilli(until).UTC()
	}
	return d, nil
}
