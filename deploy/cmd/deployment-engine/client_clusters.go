package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["clusters"] = clientCommand("clusters", clustersCmd) }

// clustersCmd: clusters | clusters create NAME | clusters show NAME.
func clustersCmd(ctx context.Context, s *session) int {
	const use = "clusters | clusters create NAME | clusters show NAME"
	a := s.args
	switch {
	case len(a) == 0:
	case len(a) == 2 && (a[0] == "create" || a[0] == "show"):
	default:
		return s.usage("%s", use)
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	if len(a) == 2 {
		get := s.c.ClusterNamed
		if a[0] == "create" {
			get = s.c.CreateCluster
		}
		c, raw, err := get(ctx, a[1])
		return s.answer(raw, err, func() {
			if a[0] == "create" {
				fmt.Fprintf(s.stdout, "cluster %s made: post its config with `deployment-engine config set FILE --cluster %s`\n", c.Name, c.Name)
				return
			}
			s.clusterTable([]contract.Cluster{c})
		})
	}
	list, raw, err := s.c.Clusters(ctx)
	return s.answer(raw, err, func() { s.clusterTable(list) })
}

func (s *session) clusterTable(list []contract.Cluster) {
	tw := table(s.stdout, "NAME\tCATALOG\tNODES\tCREATED\tBY")
	for _, c := range list {
		created, by := "-", "-"
		if !c.Created.IsZero() {
			created = c.Created.Format("2006-01-02 15:04")
		}
		if c.By != "" {
			by = printable(c.By)
		}
		nodes := "-"
		if len(c.Nodes) > 0 {
			nodes = strings.Join(c.Nodes, ",")
		}
		catalog := "-"
		if c.Catalog != "" {
			catalog = c.Catalog
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, catalog, nodes, created, by)
	}
	_ = tw.Flush()
}
