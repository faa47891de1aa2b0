package generator

import (
	"path"

	"google.golang.org/protobuf/compiler/protogen"
)

// layout says where the generated code of a .proto file goes. By default the
// bridge is part of the file's own Go package, beside the .pb.go files. With
// package_suffix=S it is a package of its own: named <package>S, imported as
// <import path>/<package>S and written to the folder of that name beside
// the .pb.go files. It then imports the message package like any other, so
// the message package may come from another module that the user does not
// regenerate, such as a vendor's.
type layout struct {
	suffix string
	// names maps the Go packages of the run to their names, so that a host
	// constructor can name a bridge generated from another file.
	names map[protogen.GoImportPath]protogen.GoPackageName
}

func newLayout(plugin *protogen.Plugin, suffix string) *layout {
	l := &layout{suffix: suffix, names: map[protogen.GoImportPath]protogen.GoPackageName{}}
	for _, f := range plugin.Files {
		l.names[f.GoImportPath] = f.GoPackageName
	}
	return l
}

// bridgePackage is the import path and name of the package that holds the
// bridge of the messages in the package at messages.
func (l *layout) bridgePackage(messages protogen.GoImportPath) (protogen.GoImportPath, protogen.GoPackageName) {
	name := l.names[messages]
	if l.suffix == "" {
		return messages, name
	}
	name += protogen.GoPackageName(l.suffix)
	return protogen.GoImportPath(path.Join(string(messages), string(name))), name
}

// bridgeIdent is ident moved from the message package to its bridge package.
func (l *layout) bridgeIdent(ident protogen.GoIdent) protogen.GoIdent {
	importPath, _ := l.bridgePackage(ident.GoImportPath)
	return importPath.Ident(ident.GoName)
}

// filename is the name of the file generated for f. protogen has already
// applied paths= and module= to f's prefix; the suffixed package adds a
// folder, as its import path adds an element.
func (l *layout) filename(f *protogen.File) string {
	prefix := f.GeneratedFilenamePrefix
	if l.suffix != "" {
		_, name := l.bridgePackage(f.GoImportPath)
		prefix = path.Join(path.Dir(prefix), string(name), path.Base(prefix))
	}
	return prefix + "_httpbridge.pb.go"
}
