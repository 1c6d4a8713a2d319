package hubapi

// Configuration is an automatic device management configuration: GET/PUT
// /configurations/{id} and the rows of GET /configurations
// (https://learn.microsoft.com/rest/api/iothub/service/configuration).
type Configuration struct {
	ID                 string                `json:"id"`
	SchemaVersion      string                `json:"schemaVersion,omitempty"`
	Labels             map[string]string     `json:"labels,omitempty"`
	Content            *ConfigurationContent `json:"content,omitempty"`
	ContentType        string                `json:"contentType,omitempty"`
	TargetCondition    string                `json:"targetCondition"`
	CreatedTimeUTC     string                `json:"createdTimeUtc,omitempty"`
	LastUpdatedTimeUTC string                `json:"lastUpdatedTimeUtc,omitempty"`
	Priority           int                   `json:"priority"`
	SystemMetrics      *ConfigurationMetrics `json:"systemMetrics,omitempty"`
	Metrics            *ConfigurationMetrics `json:"metrics,omitempty"`
	ETag               string                `json:"etag,omitempty"`
}

// ConfigurationContent is a configuration's content. deviceContent maps twin paths
// ("properties.desired.firmware") to the values the configuration sets.
type ConfigurationContent struct {
	DeviceContent  map[string]any `json:"deviceContent,omitempty"`
	ModulesContent map[string]any `json:"modulesContent,omitempty"`
	ModuleContent  map[string]any `json:"moduleContent,omitempty"`
}

// ConfigurationMetrics are a configuration's metric queries and their results.
type ConfigurationMetrics struct {
	Results map[string]int64  `json:"results"`
	Queries map[string]string `json:"queries"`
}
