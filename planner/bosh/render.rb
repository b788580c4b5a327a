# Renders BOSH job templates with Ruby's own ERB and BOSH's template
# evaluation context. Input on stdin, JSON:
#   {"jobs": [{"templates": [{"source", "dest", "text"}], "monit": "...",
#              "spec": {... "properties": {...}, "links": {...}}}]}
# Output on stdout, JSON: {"jobs": [{"files": [{"dest", "content"}],
#   "monit": "...", "error": "..."}]}, one entry per input job, in order.
require 'erb'
require 'json'
require 'ostruct'

module DE
  class UnknownProperty < StandardError
    def initialize(names)
      super("Can't find property '#{names.join("', or '")}'")
    end
  end

  class UnknownLink < StandardError
    def initialize(name)
      super("Can't find link '#{name}'")
    end
  end

  def self.lookup(collection, name)
    ref = collection
    name.to_s.split('.').each do |key|
      return nil unless ref.is_a?(Hash)
      ref = ref[key]
      return nil if ref.nil?
    end
    ref
  end

  def self.openstruct(object)
    case object
    when Hash
      OpenStruct.new(object.each_with_object({}) { |(k, v), h| h[k] = openstruct(v) })
    when Array
      object.map { |item| openstruct(item) }
    else
      object
    end
  end

  # What if_p and if_link return: else runs its block only when the
  # condition did not hold.
  class ActiveElseBlock
    def initialize(ctx)
      @ctx = ctx
    end

    def else
      yield
    end

    def else_if_p(*names, &block)
      @ctx.if_p(*names, &block)
    end
  end

  class InactiveElseBlock
    def else; end

    def else_if_p(*_names)
      InactiveElseBlock.new
    end
  end

  module PropertyLookup
    def p(*args)
      names = Array(args[0])
      names.each do |name|
        value = DE.lookup(@raw_properties, name)
        return value unless value.nil?
      end
      return args[1] if args.length == 2
      raise UnknownProperty.new(names)
    end

    def if_p(*names)
      values = names.map do |name|
        value = DE.lookup(@raw_properties, name)
        return ActiveElseBlock.new(self) if value.nil?
        value
      end
      yield(*values)
      InactiveElseBlock.new
    end
  end

  class LinkInstance
    attr_reader :name, :index, :id, :az, :address, :bootstrap

    def initialize(h)
      @name = h['name']
      @index = h['index']
      @id = h['id']
      @az = h['az']
      @address = h['address']
      @bootstrap = h['bootstrap']
    end
  end

  class Link
    include PropertyLookup
    attr_reader :instances, :properties

    def initialize(spec)
      @raw_properties = spec['properties'] || {}
      @properties = DE.openstruct(@raw_properties)
      @instances = (spec['instances'] || []).map { |i| LinkInstance.new(i) }
    end

    # On bare metal an instance's address is its node's IP: the link's
    # address is its first instance's (in the given azs, when asked).
    def address(criteria = {})
      list = @instances
      azs = criteria[:azs] || criteria['azs']
      list = list.select { |i| azs.include?(i.az) } if azs
      first = list.find(&:bootstrap) || list.first
      first && first.address
    end
  end

  class Context
    include PropertyLookup
    attr_reader :name, :index, :properties, :spec, :raw_properties

    def initialize(spec)
      @raw_spec = spec
      @raw_properties = spec['properties'] || {}
      @properties = DE.openstruct(@raw_properties)
      @spec = DE.openstruct(spec)
      @name = spec['name']
      @index = spec['index']
      @links = spec['links'] || {}
    end

    def link(name)
      l = @links[name]
      raise UnknownLink.new(name) if l.nil? || !l.key?('instances')
      Link.new(l)
    end

    def if_link(name)
      l = @links[name]
      return ActiveElseBlock.new(self) if l.nil? || !l.key?('instances')
      yield Link.new(l)
      InactiveElseBlock.new
    end

    def get_binding
      binding
    end
  end

  def self.render(text, file, spec)
    erb = ERB.new(text, trim_mode: '-')
    erb.filename = file
    erb.result(Context.new(spec).get_binding)
  rescue Exception => e # rubocop:disable Lint/RescueException
    line = (e.backtrace || []).map { |l| l[/\A#{Regexp.escape(file)}:(\d+)/, 1] }.compact.first
    where = line ? " (line #{line})" : ''
    raise StandardError, "Error filling in template '#{file}'#{where}: #{e.message.lines.first.to_s.strip}"
  end
end

input = JSON.parse($stdin.read)
out = input['jobs'].map do |job|
  begin
    files = job['templates'].map do |t|
      { 'dest' => t['dest'], 'content' => DE.render(t['text'], t['source'], job['spec']) }
    end
    { 'files' => files, 'monit' => DE.render(job['monit'] || '', 'monit', job['spec']) }
  rescue StandardError => e
    { 'error' => e.message }
  end
end
$stdout.write(JSON.generate({ 'jobs' => out }))
