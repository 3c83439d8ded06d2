package resp

import (
	"bufio"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	for in, want := range map[string]string{
		"+OK\r\n":                            "OK",
		":42\r\n":                            "42",
		"$3\r\nabc\r\n":                      "abc",
		"$-1\r\n":                            "",
		"*2\r\n$1\r\na\r\n*1\r\n:7\r\n":      "a\n7",
		"*3\r\n+x\r\n$0\r\n\r\n$2\r\nyz\r\n": "x\n\nyz",
	} {
		got, err := Read(bufio.NewReader(strings.NewReader(in)))
		if err != nil || got != want {
			t.Errorf("Read(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"-ERR no\r\n", "$99999999\r\n", "*-2\r\n", "?\r\n", "\r\n", "$5\r\nab"} {
		if _, err := Read(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("Read(%q) succeeded", in)
		}
	}
	if got := string(Encode("GET", "k")); got != "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" {
		t.Errorf("Encode = %q", got)
	}
}
