package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
)

// appSQL reads query texts out of the application's source, so that the
// plans printed are those of the SQL the server really runs (not of a copy
// that may drift): the constants of the files read and the string
// arguments of the db calls of named functions.
type appSQL struct {
	consts map[string]string
	// calls maps "Func#n" to the query text of the n-th (from 1) call of a
	// Query/QueryRow/Exec method inside the function Func.
	calls map[string]string
}

func loadAppSQL(root string, files ...string) (*appSQL, error) {
	a := &appSQL{consts: map[string]string{}, calls: map[string]string{}}
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, f := range files {
		af, err := parser.ParseFile(fset, filepath.Join(root, f), nil, 0)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, af)
	}
	// Constants first (any file), then the calls that use them.
	for _, af := range parsed {
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := a.eval(vs.Values[i]); ok {
							a.consts[name.Name] = s
						}
					}
				}
			}
		}
	}
	for _, af := range parsed {
		for _, decl := range af.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			n := 0
			ast.Inspect(fd.Body, func(node ast.Node) bool {
				call, ok := node.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || len(call.Args) < 2 {
					return true
				}
				switch sel.Sel.Name {
				case "Query", "QueryRow", "Exec", "ExecRow", "listPage", "pageRows":
				default:
					return true
				}
				if s, ok := a.eval(call.Args[1]); ok {
					n++
					a.calls[fmt.Sprintf("%s#%d", fd.Name.Name, n)] = s
				}
				return true
			})
		}
	}
	return a, nil
}

// eval concatenates string literals and known constants.
func (a *appSQL) eval(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.Ident:
		s, ok := a.consts[x.Name]
		return s, ok
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		l, ok1 := a.eval(x.X)
		r, ok2 := a.eval(x.Y)
		return l + r, ok1 && ok2
	case *ast.ParenExpr:
		return a.eval(x.X)
	}
	return "", false
}

func (a *appSQL) call(key string) (string, error) {
	s, ok := a.calls[key]
	if !ok {
		return "", fmt.Errorf("query %s not found in the application source (has the code moved?)", key)
	}
	return s, nil
}

// inline substitutes literal values for the ? placeholders (outside quotes),
// for EXPLAIN on PostgreSQL and for printing.
func inline(query string, args []any) string {
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?' && n < len(args):
			switch v := args[n].(type) {
			case string:
				b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
			default:
				fmt.Fprint(&b, v)
			}
			n++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// tidy folds the query's indentation for printing.
func tidy(q string) string {
	lines := strings.Split(q, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n  ")
}
