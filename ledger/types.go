package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on names and keys. They bound what one request can make the ledger
// store, and they are checked before storage is touched.
const (
	MaxNameBytes = 256 // sender, capability, customer, job ID
	MaxKeyBytes  = 256 // idempotency key
)

// Kind says whether an account is a pool or a job.
type Kind string

const (
	KindPool Kind = "pool"
	KindJob  Kind = "job"
)

// State is an account's lifecycle state. Pools are always StateOpen.
type State string

const (
	StateOpen    State = "open"
	StateClosed  State = "closed"
	StateExpired State = "expired"
)

// IsFinal reports whether no money can move into or out of the account any
// more (a closed or expired job).
func (s State) IsFinal() bool { return s == StateClosed || s == StateExpired }

// PoolKey names a pool: prepaid credit of one sender for one capability,
// optionally per customer of a remote signer ("" for none).
type PoolKey struct {
	Sender     string `json:"sender"`
	Capability string `json:"capability"`
	Customer   string `json:"customer,omitempty"`
}

// JobKey names a job. Job IDs are scoped by sender.
type JobKey struct {
	Sender string `json:"sender"`
	JobID  string `json:"job_id"`
}

// Ref identifies any account. Name is the capability of a pool or the job
// ID of a job; Customer is empty for jobs.
type Ref struct {
	Kind     Kind   `json:"kind"`
	Sender   string `json:"sender"`
	Name     string `json:"name"`
	Customer string `json:"customer,omitempty"`
}

// Ref returns the account reference of the pool.
func (k PoolKey) Ref() Ref { return Ref{KindPool, k.Sender, k.Capability, k.Customer} }

// Ref returns the account reference of the job.
func (k JobKey) Ref() Ref { return Ref{KindJob, k.Sender, k.JobID, ""} }

// Pool returns the pool key of a pool reference.
func (r Ref) Pool() PoolKey { return PoolKey{r.Sender, r.Name, r.Customer} }

// Job returns the job key of a job reference.
func (r Ref) Job() JobKey { return JobKey{r.Sender, r.Name} }

// refSep separates the parts of a stored reference. Names may not contain
// control characters, so the encoding is unambiguous.
const refSep = "\x1f"

// Encode returns the canonical string form stored in the ref column.
func (r Ref) Encode() string {
	return string(r.Kind) + refSep + r.Sender + refSep + r.Name + refSep + r.Customer
}

// DecodeRef parses the canonical string form.
func DecodeRef(s string) (Ref, error) {
	p := strings.Split(s, refSep)
	if len(p) != 4 || (p[0] != string(KindPool) && p[0] != string(KindJob)) {
		return Ref{}, fmt.Errorf("%w: malformed account reference %q", ErrInvalidInput, s)
	}
	return Ref{Kind(p[0]), p[1], p[2], p[3]}, nil
}

// String is a readable form for logs and errors.
func (r Ref) String() string {
	if r.Kind == KindJob {
		return fmt.Sprintf("job(%s,%s)", r.Sender, r.Name)
	}
	if r.Customer != "" {
		return fmt.Sprintf("pool(%s,%s,%s)", r.Sender, r.Name, r.Customer)
	}
	return fmt.Sprintf("pool(%s,%s)", r.Sender, r.Name)
}

// Validate checks the reference's names (non-empty where required, at most
// MaxNameBytes, valid UTF-8, no control characters): ErrInvalidInput.
func (r Ref) Validate() error {
	switch r.Kind {
	case KindPool:
		if err := checkName("capability", r.Name, true); err != nil {
			return err
		}
		if err := checkName("customer", r.Customer, false); err != nil {
			return err
		}
	case KindJob:
		if err := checkName("job ID", r.Name, true); err != nil {
			return err
		}
		if r.Customer != "" {
			return fmt.Errorf("%w: a job reference has no customer", ErrInvalidInput)
		}
	default:
		return fmt.Errorf("%w: account kind %q", ErrInvalidInput, r.Kind)
	}
	return checkName("sender", r.Sender, true)
}

func checkName(what, s string, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("%w: empty %s", ErrInvalidInput, what)
	case len(s) > MaxNameBytes:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidInput, what, MaxNameBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, what)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s contains a control character", ErrInvalidInput, what)
	}
	return nil
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty idempotency key", ErrInvalidInput)
	}
	return checkName("idempotency key", key, true)
}

// checkAmount accepts 0 ≤ a ≤ MaxAmount.
func checkAmount(what string, a Amount) error {
	if a.Sign() < 0 {
		return fmt.Errorf("%w: negative %s %s", ErrInvalidInput, what, a)
	}
	if a.outOfRange() {
		return fmt.Errorf("%w: %s %s exceeds 2^256-1", ErrInvalidInput, what, a)
	}
	return nil
}

// Account is the stored state of a pool or a job.
//
// The four counters only grow; for every account
//
//	Balance = Credited − Charged + MovedIn − MovedOut.
//
// For a job, MovedIn is what it drew from its pool (plus a deficit covered by
// the pool on release) and MovedOut what it gave back; for a pool, the reverse.
type Account struct {
	ID       int64  `json:"id"`
	Ref      Ref    `json:"ref"`
	PoolRef  Ref    `json:"pool_ref,omitzero"` // jobs only
	PoolID   int64  `json:"pool_id,omitempty"` // jobs only
	State    State  `json:"state"`
	Balance  Amount `json:"balance"`
	Credited Amount `json:"credited"`
	Charged  Amount `json:"charged"`
	MovedIn  Amount `json:"moved_in"`
	MovedOut Amount `json:"moved_out"`
	// TTL is a job's idle lifetime; ExpiresAt = last activity + TTL while
	// open. In JSON it is ttl_seconds (see MarshalJSON).
	TTL       time.Duration `json:"-"`
	OpenedAt  time.Time     `json:"opened_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	ExpiresAt time.Time     `json:"expires_at,omitzero"`
	ClosedAt  time.Time     `json:"closed_at,omitzero"`
}

// MarshalJSON encodes an account with its TTL as ttl_seconds, a number of
// seconds, not Go's nanoseconds.
func (a Account) MarshalJSON() ([]byte, error) {
	type account Account // without these methods
	return json.Marshal(struct {
		account
		TTL float64 `json:"ttl_seconds,omitempty"`
	}{account(a), a.TTL.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Account) UnmarshalJSON(b []byte) error {
	type account Account
	var v struct {
		account
		TTL float64 `json:"ttl_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Account(v.account)
	a.TTL = time.Duration(math.Round(v.TTL * float64(time.Second)))
	return nil
}

// EntryKind says what an entry records.
type EntryKind string

const (
	EntryCredit  EntryKind = "credit"  // outside → account (a payment)
	EntryCharge  EntryKind = "charge"  // account → outside (compute used)
	EntryReserve EntryKind = "reserve" // pool → job (a hold opened or topped up)
	EntryRelease EntryKind = "release" // job → pool at close (pool → job for a deficit)
	EntryExpire  EntryKind = "expire"  // as release, by the sweeper after the TTL
)

// Entry is one movement of money. From or To is 0 for the outside world.
// Amount is never negative: a deficit released at close is recorded as a
// movement from the pool to the job.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Kind   EntryKind `json:"kind"`
	From   int64     `json:"from,omitempty"`
	To     int64     `json:"to,omitempty"`
	Amount Amount    `json:"amount"`
	// Key and InputHash make credits and charges idempotent.
	Key       string `json:"key,omitempty"`
	InputHash string `json:"input_hash,omitempty"`
	// BalanceAfter is the balance, right after this entry, of the account the
	// operation was addressed to (the credited or charged account, the job of
	// a reserve or release).
	BalanceAfter Amount `json:"balance_after"`
}
