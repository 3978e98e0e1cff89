package sqlstore

import (
	"slices"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	text := `CREATE TABLE a (x BIGINT); -- a comment; not a statement
CREATE FUNCTION f() RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    RETURN 1; -- inside the body
END
$$;
CREATE INDEX a_x ON a (x);
`
	got := splitStatements(text)
	want := []string{
		"CREATE TABLE a (x BIGINT);",
		"CREATE FUNCTION f() RETURNS BIGINT LANGUAGE plpgsql AS $$\nBEGIN\n    RETURN 1; \nEND\n$$;",
		"CREATE INDEX a_x ON a (x);",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
