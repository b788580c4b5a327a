package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// ScheduleSpec is what AddSchedule sends: POST /schedules' body. Args is
// the action's body, as its own route takes it; nil for none.
type ScheduleSpec struct {
	Name            string          `json:"name"`
	Cron            string          `json:"cron"`
	TimeZone        string          `json:"time_zone,omitempty"`
	Action          string          `json:"action"`
	Args            json.RawMessage `json:"args,omitempty"`
	ProhibitOverlap bool            `json:"prohibit_overlap"`
	Missed          string          `json:"missed,omitempty"`
}

// AddSchedule stores a schedule.
func (c *Client) AddSchedule(ctx context.Context, in ScheduleSpec) (contract.Schedule, json.RawMessage, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return contract.Schedule{}, nil, err
	}
	var out contract.Schedule
	raw, err := c.getJSON(ctx, "POST", base+"/schedules", body, &out)
	return out, raw, err
}

// Schedules lists the schedules, each with its next and last run.
func (c *Client) Schedules(ctx context.Context) ([]contract.Schedule, json.RawMessage, error) {
	var out []contract.Schedule
	raw, err := c.getJSON(ctx, "GET", base+"/schedules", nil, &out)
	return out, raw, err
}

// DeleteSchedule deletes schedule name.
func (c *Client) DeleteSchedule(ctx context.Context, name string) (contract.Schedule, json.RawMessage, error) {
	var out contract.Schedule
	raw, err := c.getJSON(ctx, "DELETE", base+"/schedules/"+url.PathEscape(name), nil, &out)
	return out, raw, err
}
