package signer

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"time"

	"byoc/ledger"
)

// StatementLine is one movement of a customer's budget (or usage tally).
type StatementLine struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // grant, spend or refund
	// Amount is positive for grants and refunds, negative for spends (with
	// budgets), as the budget sees it; with a usage tally spends are positive.
	Amount  ledger.Amount `json:"amount"`
	Balance ledger.Amount `json:"balance"`
	// Ref is the grant's key, or the spend's usage event ID (the
	// CloudEvent's id).
	Ref string `json:"ref"`
}

// CustomerStatement is a customer's budget and its movements, oldest first.
type CustomerStatement struct {
	BudgetView
	Lines     []StatementLine `json:"lines"`
	Truncated bool            `json:"truncated,omitempty"`
}

// Statement returns customer's statement from the ledger, at most limit
// lines (0: all), the most recent last.
func (b *Budgets) Statement(ctx context.Context, customer string, limit int) (CustomerStatement, error) {
	st, err := b.Ledger.Statement(ctx, b.Ref(customer), limit)
	if errors.Is(err, ledger.ErrNotFound) {
		return CustomerStatement{BudgetView: BudgetView{Customer: customer}, Lines: []StatementLine{}}, nil
	}
	if err != nil {
		return CustomerStatement{}, err
	}
	out := CustomerStatement{BudgetView: view(st.Account), Lines: make([]StatementLine, 0, len(st.Entries)), Truncated: st.Truncated}
	for _, e := range st.Entries {
		l := StatementLine{At: e.At, Amount: e.Amount, Balance: e.BalanceAfter}
		kind, ref, _ := strings.Cut(e.Key, ":")
		l.Kind, l.Ref = kind, ref
		if e.Kind == ledger.EntryCharge {
			l.Amount = e.Amount.Neg()
		}
		out.Lines = append(out.Lines, l)
	}
	return out, nil
}

// WriteCSV writes the statement's lines as CSV with a header row.
func (s CustomerStatement) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"customer", "at", "kind", "amount_wei", "balance_wei", "ref"})
	for _, l := range s.Lines {
		cw.Write([]string{s.Customer, l.At.UTC().Format(time.RFC3339Nano), l.Kind, l.Amount.String(), l.Balance.String(), l.Ref})
	}
	cw.Flush()
	return cw.Error()
}
