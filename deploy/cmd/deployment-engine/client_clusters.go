package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["clusters"] = clientCommand("clusters", clustersCmd) }

// clustersCmd: clusters | clusters create NAME | clusters show NAME |
// clusters delete NAME [--follow].
func clustersCmd(ctx context.Context, s *session) int {
	const use = "clusters | clusters create NAME | clusters show NAME | clusters delete NAME [--follow]"
	a := s.args
	switch {
	case len(a) == 0:
	case len(a) == 2 && (a[0] == "create" || a[0] == "show" || a[0] == "delete"):
	default:
		return s.usage("%s", use)
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	if len(a) == 2 && a[0] == "delete" {
		return clusterDelete(ctx, s, a[1])
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

// clusterDelete starts cluster name's delete and, with --follow, waits
// until the cluster is gone.
func clusterDelete(ctx context.Context, s *session, name string) int {
	id, raw, err := s.c.DeleteCluster(ctx, name)
	if err != nil {
		return s.fail(err)
	}
	if s.json && !s.follow {
		s.printJSON(raw)
		return exitOK
	}
	if id == "" {
		fmt.Fprintf(s.stdout, "cluster %s deleted: it had placed nothing\n", name)
		return exitOK
	}
	fmt.Fprintf(s.stdout, "cluster %s is being deleted: deployment %s removes its instances and agents\n", name, id)
	if !s.follow {
		return exitOK
	}
	for {
		c, _, err := s.c.ClusterNamed(ctx, name)
		switch {
		case client.StatusOf(err) == 404:
			fmt.Fprintf(s.stdout, "cluster %s deleted\n", name)
			return exitOK
		case err != nil:
			return s.fail(err)
		case c.Deleting == "":
			fmt.Fprintf(s.stderr, "cluster %s's delete failed (deployment %s); the cluster stays: see deployment-engine deployments %s --cluster %s\n", name, id, id, name)
			return exitFailed
		}
		select {
		case <-ctx.Done():
			return s.fail(ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
